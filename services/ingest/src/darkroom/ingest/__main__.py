"""Start the ingest service: `python -m darkroom.ingest`."""

from darkroom.ingest.app import create_runtime

if __name__ == "__main__":
    create_runtime().run()
