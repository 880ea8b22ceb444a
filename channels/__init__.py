"""semcom's physical layer: modulation, channel models, BER theory, bits, Monte Carlo.

Usable on its own; imports nothing else of semcom.
"""
