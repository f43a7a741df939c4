"""Operator-area test support: its Redis databases and made-up Pushover keys.

Modules of the area run one after another, so each takes one database of the three:
alerts and watchdog 13, report 14, Flower 15.
"""

REDIS_DBS = (13, 14, 15)
PUSHOVER_TOKEN = "atesttoken0123456789abcdefghij"  # 30 characters, like a real one
PUSHOVER_USER = "utestuser0123456789abcdefghijk"
