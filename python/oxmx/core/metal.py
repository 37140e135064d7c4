"""oxmx.core.metal — Metal is Apple-only; oxmx never has it."""


def is_available():
    return False


def device_info():
    raise RuntimeError("[metal.device_info] Metal is not available.")


def start_capture(path):
    raise RuntimeError("[metal.start_capture] Metal is not available.")


def stop_capture():
    raise RuntimeError("[metal.stop_capture] Metal is not available.")
