//! Local backend of traefiker: narratives as child processes on this machine.
