"""The step graph model shared by every frontend and backend."""
