"""Real-time segmentation of camera, video, RTSP and image streams. Never imports torch."""
