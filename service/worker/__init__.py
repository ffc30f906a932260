"""The queue consumer: claims operations and runs each in a child process."""
