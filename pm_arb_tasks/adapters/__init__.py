"""The edge of the system: every HTTP call and venue SDK lives under this package, and every
payload is translated into our domain types here, so nothing inside ever sees a venue format."""
