"""``pyani screen``: placeholder until the screening module lands."""


def register(commands) -> None:
    pass
