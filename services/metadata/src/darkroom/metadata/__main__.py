"""Start the metadata service: `python -m darkroom.metadata`."""

from darkroom.metadata.app import create_runtime

if __name__ == "__main__":
    create_runtime().run()
