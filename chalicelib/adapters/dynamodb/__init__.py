"""DynamoDB adapters: PynamoDB models, the table schema, and the repositories over them."""
