"""Start the tagging service: `python -m darkroom.tagging`."""

from darkroom.tagging.app import create_runtime

if __name__ == "__main__":
    create_runtime().run()
