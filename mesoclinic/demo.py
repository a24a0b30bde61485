"""The demo clinic (filled in below)."""


def load() -> bool:
    return False


def logins_text(host: str, port: int) -> str:
    return ""
