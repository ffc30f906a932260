"""The HTTP API: Flask app factory, flask-smorest customisation, problems and resources."""
