"""Settings every test process shares."""

import os

from cryptography.fernet import Fernet

# The gateway and notify do not start without a sealing key (darkroom.common.sealing): each
# test run makes its own, unless one is given.
os.environ.setdefault("DARKROOM_SEALING_KEYS", Fernet.generate_key().decode())
