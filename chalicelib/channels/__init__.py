"""Channel adapters: verify and parse each platform's inbound requests; send replies back out."""
