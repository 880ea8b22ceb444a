"""semcom: an end-to-end semantic-communication link simulator (ISFR + SI-UEP)."""

__version__ = "0.1.0"
