"""One engine runs every source: `stages` holds one team's stages (fetch → land raw → normalize →
swap, and replay from raw); `batches` runs them for every team of a step, writing in batches."""
