"""Pure domain model of kefu: no boto3, chalice or pynamodb imports allowed in this package."""
