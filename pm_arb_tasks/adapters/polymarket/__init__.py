"""Polymarket at the edge: Gamma discovery rows -> `Market`, CLOB book payloads -> `Book`.

Order placement through py-clob-client-v2 lives beside these (the venue adapter); everything
here is read-only and parses untrusted JSON defensively.
"""
