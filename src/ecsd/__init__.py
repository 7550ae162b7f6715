"""ecsd: a self-hosted Elastic Cloud Server control plane speaking the OTC / Huawei Cloud ECS API."""

__version__ = "0.1.0"
