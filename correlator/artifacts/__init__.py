"""Facts from the files a bundle carries besides logs: certificates and keys, mosquitto.conf,
ACL and password files, OPC UA PKI folders, and a live TLS probe of a broker. Pure functions
over `cryptography` objects and parsed configs; rendering lives in the CLI."""
