"""Pictures of results: colours, mask overlays and the synthesised front view of a cloud."""
