"""Kafka for this project.

  topics.py  our topics, created with their sizes and retention before anything publishes to them
  admin.py   at run time, over aiokafka clients: topic configs, log-end and committed offsets, consumer lag, and the
             filter that keeps aiokafka's logs readable while a broker is away
  broker.py  for development and tests: a single-node KRaft broker (`denomas-usage broker start`, kafka_cluster)
  jars.py    the broker's jars, fetched once with Maven
"""
