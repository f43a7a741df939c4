"""Pure domain: value types, pricing, fees, sizing, risk rules. No I/O; time is passed in."""
