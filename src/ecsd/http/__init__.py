"""The HTTP layer: parses requests, calls one domain function, shapes the response. No business rules."""
