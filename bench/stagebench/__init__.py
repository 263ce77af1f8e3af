"""Parts of bench/chirp_stages.py: the seeded dataset (kept between runs) and the HTTP load."""
