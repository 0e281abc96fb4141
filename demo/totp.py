"""Print the current TOTP code for a base32 secret (for the demo's staff admin, when no authenticator app is at
hand). Usage: python demo/totp.py SECRET"""

import base64
import hashlib
import hmac
import struct
import sys
import time


def totp(secret: str, period: int = 30, digits: int = 6) -> str:
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(time.time()) // period), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(totp(sys.argv[1]))
