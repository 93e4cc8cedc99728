"""The agent's decisions (pure): ``agent`` wires them; ``spending``, ``reservations`` and ``holdings``
make them on the ``books`` (slices and request ``records``); ``serving`` says whether a slice may
serve, ``waiting`` how long to wait for one, ``refill`` when to ask for one."""
