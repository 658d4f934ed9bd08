"""Start the dedup service: `python -m darkroom.dedup`."""

from darkroom.dedup.app import create_runtime

if __name__ == "__main__":
    create_runtime().run()
