"""Storage mechanics: how predictions are laid out and moved in the database (the chunk
codec, the binary COPY encoder, Postgres helpers, day partitions and their planner). Imports
no web framework and no domain package."""
