"""kefu: omnichannel customer-service backbone — the application package behind app.py."""
