"""The original system's ingest API, for comparison with pipelines/pinterest_ingest.yaml.

As the original: FastAPI, a pydantic model of the post fields, one
kafka-python KafkaProducer with a JSON value serializer, and
producer.send(...) fire-and-forget (the answer does NOT wait for Kafka), run
by uvicorn with one worker. The routes are flowrun's: POST /v1/posts (one
JSON post) and POST /v1/posts/batch (NDJSON, one post a line), which the
original did not have; it validates every line with the same model and
sends each post. Fields are Optional because the generated posts, like the
real data, sometimes lack unique_id or category (flowrun accepts those too).

  KAFKA_BROKERS=127.0.0.1:9092 TOPIC=t uvicorn app:app --port 18081 --workers 1
"""
import json
import os
from typing import Optional

from fastapi import FastAPI, HTTPException, Request
from kafka import KafkaProducer
from pydantic import BaseModel, ValidationError


class Post(BaseModel):
    index: Optional[int] = None
    unique_id: Optional[str] = None
    title: Optional[str] = None
    description: Optional[str] = None
    poster_name: Optional[str] = None
    follower_count: Optional[str] = None
    tag_list: Optional[str] = None
    is_image_or_video: Optional[str] = None
    image_src: Optional[str] = None
    downloaded: Optional[int] = None
    save_location: Optional[str] = None
    category: Optional[str] = None


TOPIC = os.environ.get("TOPIC", "pinterest.posts")
producer = KafkaProducer(
    bootstrap_servers=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092").split(","),
    value_serializer=lambda v: json.dumps(v).encode("utf-8"),
)
app = FastAPI()


@app.post("/v1/posts")
def post_one(post: Post):
    producer.send(TOPIC, value=post.model_dump())  # fire-and-forget, as the original
    return {"accepted": 1}


@app.post("/v1/posts/batch")
async def post_batch(request: Request):
    body = await request.body()
    n = 0
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            post = Post.model_validate_json(line)
        except ValidationError as e:
            raise HTTPException(status_code=400, detail=str(e))
        producer.send(TOPIC, value=post.model_dump())
        n += 1
    return {"accepted": n}


@app.on_event("shutdown")
def flush():
    producer.flush()
    producer.close()
