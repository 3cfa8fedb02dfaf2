"""Many posed views fused into one labelled 3D map (issue 13): the voxel map first."""
