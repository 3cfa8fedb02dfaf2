"""Reading and writing data: PLY point clouds and RGB-D frames (folders, depth images)."""
