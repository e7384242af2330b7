"""The workflow engine: definitions, validation, planning and durable execution."""
