"""SI-UEP resource allocation (ISFR.md sec. 4-5); imports channels only."""
