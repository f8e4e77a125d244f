"""What a candidate is: the architecture IR, its grammar, reference networks, search spaces and exact analysis."""

from search_spaces.analysis import Analysis, Layer, analyze
from search_spaces.arch import ArchSpec, Block, Head, make_divisible
from search_spaces.errors import ArchError
from search_spaces.grammar import decode, encode
from search_spaces.references import reference, reference_names, resolve
from search_spaces.space import SearchSpace, load_space, register_space, space_names

__all__ = [
    "Analysis", "ArchError", "ArchSpec", "Block", "Head", "Layer", "analyze", "decode", "encode", "make_divisible",
    "reference", "reference_names", "resolve", "SearchSpace", "load_space", "register_space", "space_names",
]
