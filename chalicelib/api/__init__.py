"""HTTP surface: Chalice blueprints for webhooks, the staff API, public pages and the admin page."""
