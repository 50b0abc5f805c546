"""The `recsvc` command line as a spark-submit application: the arguments after this file's
path are recsvc's, e.g.

    spark-submit --master spark://spark-master:7077 deploy/spark/recsvc_job.py \
        nightly --engine spark --events /data/events --reports /data/reports

spark-submit says where Spark runs (its --master); the fit then runs there (docs/spark.md).
"""

import sys

from recsvc.cli.app import main

if __name__ == "__main__":
    sys.argv = ["recsvc", *sys.argv[1:]]
    main()
