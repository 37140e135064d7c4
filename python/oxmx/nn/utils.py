__all__ = []


def value_and_grad(*a, **k):
    raise NotImplementedError


def average_gradients(*a, **k):
    raise NotImplementedError


def fully_shard(*a, **k):
    raise NotImplementedError
