"""Start the notify service: `python -m darkroom.notify`."""

from darkroom.notify.app import create_runtime

if __name__ == "__main__":
    create_runtime().run()
