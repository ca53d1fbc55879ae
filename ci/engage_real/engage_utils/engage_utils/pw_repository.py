"""Engage's password repository. The stand-in keeps values in memory and saves them as JSON
(not encrypted: the check's deployments carry no secrets)."""
import json
import random
import string

REPOSITORY_FILE_NAME = "pw_repository"
SALT_FILE_NAME = "pw_salt"


class PasswordRepository(object):
    def __init__(self, key, data=None, salt=None):
        self.key = key
        self.data = dict(data or {})

    def add_key(self, k, v):
        self.data[k] = v

    def has_key(self, k):
        return k in self.data

    def get_value(self, k):
        return self.data[k]

    def items(self):
        return self.data.items()

    def save_to_file(self, filename, salt_filename=None):
        with open(filename, "w") as f:
            json.dump(self.data, f)
        if salt_filename:
            open(salt_filename, "w").close()

    @staticmethod
    def load_from_file(filename, salt_filename, key):
        with open(filename) as f:
            return PasswordRepository(key, json.load(f))


def gen_password(length, chars=string.ascii_letters + string.digits):
    rng = random.SystemRandom()
    return "".join(rng.choice(chars) for _ in range(length))


def encrypt_object(obj, key):
    return json.dumps(obj)


def decrypt_object(data, key):
    return json.loads(data)
