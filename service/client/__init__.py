"""The `migctl` client commands: talk to a migctl server over HTTP, for pipelines and people."""
