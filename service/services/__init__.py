"""Use cases, free of any web framework: what service.api and service.worker call."""
