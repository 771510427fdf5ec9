#!/usr/bin/env python3
"""Prints bitsandbytes' signed 8-bit dynamic map (create_dynamic_map(signed=True)) as C++ hex floats.

bitsandbytes builds this table at run time with torch.linspace in float32 on the CPU, whose last
bits depend on torch's vectorised kernel (lane width, FMA contraction), so a C++ re-derivation
differs from it in 42 of 256 entries by one ulp. engine/quant.cpp therefore embeds the table as
the real library produced it: the `dynamic_map_signed_256` list of
tests/fixtures/bnb/index.json (made by bitsandbytes 0.50.2.dev0 on an H100 machine).

usage: tools/bnb_dynamic_map_table.py tests/fixtures/bnb/index.json
"""
import json
import struct
import sys

values = json.load(open(sys.argv[1]))["dynamic_map_signed_256"]
assert len(values) == 256
def hex_literal(v):
    exact = struct.unpack("<f", struct.pack("<f", v))[0]
    assert exact == v, "not a float32 value"
    mantissa, exponent = exact.hex().split("p")
    return mantissa.rstrip("0").rstrip(".") + "p" + exponent + "f"


hexes = [hex_literal(v) for v in values]
for i in range(0, 256, 6):
    print("      " + ", ".join(hexes[i:i + 6]) + ",")
