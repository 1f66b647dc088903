"""The API service. Importing this package needs the `server` extra."""
