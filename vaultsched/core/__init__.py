"""The pure core: data, schedule math, planning, rendering and splicing text. No I/O: time and
text come in as arguments, decisions and text go out."""
