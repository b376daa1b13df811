"""Live sensors (issue 14): the model (:mod:`.model`), SenML (:mod:`.senml`), the storage path with its
partitions and rollups (:mod:`.store`), gis-ioc's MQTT broker (:mod:`.broker`), the ingester
(:mod:`.ingest`), the simulator (:mod:`.simulate`) and their command line (:mod:`.cli`); judging the
readings against limits, AQI and alarm levels, alerts and live serving in :mod:`.judge`, :mod:`.aqi`,
:mod:`.alerts` and :mod:`.live`."""
