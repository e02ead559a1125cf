"""Event handlers (stream, SQS, SNS, schedules): thin — parse the event, call a service."""
