"""Training and export of candidates: the only part of the service that imports TensorFlow for them."""
