"""4-bit recipes per backend (installed as ``sfllava_mobile.quantize``)."""
