"""Infrastructure tests: synthesise the CDK app offline, lint it, and assert on the template."""
