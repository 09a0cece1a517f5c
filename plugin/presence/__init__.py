"""Calendar presence: show-as status to Asterisk custom device and presence states, and the /presence AGI."""
