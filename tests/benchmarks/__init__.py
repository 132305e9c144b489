# Before any benchmark imports keras: t2ilib keeps TensorFlow's C++ symbols local, so that triton (which the test
# venv has, as PyPI's CUDA torch brings it) can load beside TensorFlow; `python -m tests.benchmarks.quality` crashed
# with a segmentation fault without it.
import t2ilib  # noqa: F401
