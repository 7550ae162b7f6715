"""(being written)"""

JOB_TYPES: list = []
