"""nnocc: self-configuring 3D medical image segmentation with occupancy networks."""
__version__ = "0.1.0"
